"""The master process: the arbiter loop (arbiter.py), generations and their reload
(generations.py, reload.py), zygotes, pure planning and health judgements, supervision,
listeners, status and metrics. The only package that forks, waits for or signals processes;
it never imports application code itself. Nothing is imported here up front, so that an
exec'd zygote, which imports forkhttpd.master.zygote_entry, does not pull in the master."""

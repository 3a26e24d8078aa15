"""Running the server as an operator does: the foreground run, daemonizing, the pid file,
privileges, --check-config, the control commands (status, reload, stop, ...) and the
embedded forkhttpd.HttpServer. The top layer beside the CLI."""

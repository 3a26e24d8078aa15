"""Load tests and the side-by-side benchmark for forkhttpd (see loadtests/README.md)."""

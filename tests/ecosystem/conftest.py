"""The ecosystem harness is run by run.py, not collected by the project's
own pytest run: nothing in this folder is a test module of asyncloop."""

collect_ignore_glob = ['*']

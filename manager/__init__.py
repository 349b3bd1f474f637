"""The swf-manager daemon: supervision loop, scaling, status and the command line."""

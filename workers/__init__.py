"""SWF clients, pollers, deciders and activities that run inside worker processes.

Nothing here imports the manager: a worker process gets its configuration as an
argument and reports progress through a pipe.
"""

"""Talking to Caffe: opening pycaffe nets, running the caffe tool and reading its logs, how the build was made."""

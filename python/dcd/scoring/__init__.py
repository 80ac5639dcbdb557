"""TSN-style video scoring: the test protocol (protocol.py), frame readers
(readers.py), score files (scorefile.py), the pycaffe evaluation loop
(evaluate.py), accuracies and fusion (metrics.py) and runtime measurement
(benchmark.py)."""

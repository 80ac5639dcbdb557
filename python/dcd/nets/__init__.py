"""NetSpec builders for the DCD nets (BN-Inception trunks, the three branches,
the full model) and the paper's solvers; see models/README.md."""

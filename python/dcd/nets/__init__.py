"""The DCD nets and the paper's solvers (see models/README.md): `config`
(NetConfig and its setting types), `catalogue` (the nets of each data set),
`datasets` (each data set's policy and solver schedules), `builder` (a net as
a NetParameter), `solvers`, the trunks (`bn_inception`, `small`, `blocks`),
initial weights, BN folding and checks. `config` and `catalogue` load
without pycaffe."""

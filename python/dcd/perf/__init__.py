"""All timing: the DCD layers, whole nets (Table 9), the data layer, `caffe time`, and the on-device GPU check."""

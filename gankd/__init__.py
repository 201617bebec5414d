"""gankd: a benchmark for knowledge distillation of super-resolution GANs."""

__version__ = "0.1.0"

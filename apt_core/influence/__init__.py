"""Influence functions: Hessian-vector products and inverse-Hessian solvers for MF (closed form) and any model (autograd)."""

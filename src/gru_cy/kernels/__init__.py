"""Compiled kernels: the BLAS shim and one time loop per recurrent cell.

Nothing here checks its arguments beyond what keeps memory safe; the
modules in ``gru_cy.nn`` validate, convert and allocate before calling in.
"""

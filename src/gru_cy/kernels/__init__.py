"""Compiled kernels: gru_cy's products, its thread pool and one time loop per
recurrent cell (C, in rc_*.c), behind the entry points of ``_core``.

Nothing here checks its arguments beyond what keeps memory safe; the
modules in ``gru_cy.nn`` validate, convert and allocate before calling in.
"""

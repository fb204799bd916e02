"""cola_lam."""

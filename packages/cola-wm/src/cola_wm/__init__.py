"""cola_wm."""

"""Theory: the paper's bounds (Sec. 4.3) and our simulation of them."""

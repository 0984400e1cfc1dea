"""The ideal model: layered networks (dense and convolutional), the vector field mu (Eq. 6-15), fixed-point
solvers (Eq. 59) and the exact gradients it is compared with (Eq. 17-18)."""

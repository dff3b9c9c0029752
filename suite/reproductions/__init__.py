"""The paper reproductions: the (β1, β2) grid and its diagonal test, the order of gradient-scale
invariance, and Adam's converge/diverge phase map."""

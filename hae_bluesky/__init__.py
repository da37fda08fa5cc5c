"""Human-in-the-loop STEM-EELS experiments on the Bluesky stack."""

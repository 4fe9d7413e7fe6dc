"""DCGAN Studio core: configuration, data, models, training, runs and latent maths.

Nothing in this package imports Streamlit; the dashboard in ``pages/`` calls into it.
Throughout, G is the generator, D the discriminator and z a latent vector.
"""

"""Pictures from arrays, no Streamlit: image grids and heat maps (`grids`), latent clouds and fit curves
(`clouds`), the Anomaly view's histogram and precision-recall curve (`scores`)."""

"""Streamlit helpers shared by the pages: session defaults, shared resources, charts.

Only the script thread uses these; nothing here runs TensorFlow maths.
"""

"""Recommender service: the catalog, the KNN mood model, and ranking."""

"""modpact.decomposition"""

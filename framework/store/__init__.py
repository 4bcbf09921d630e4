"""Where vectors and documents live: ChromaDB collections bound to embedding spaces, the embedding
cache, loaders and chunking.
"""

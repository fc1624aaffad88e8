mod di_vectors;

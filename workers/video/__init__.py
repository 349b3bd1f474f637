"""Video face pipeline: probe, frame sampling, detection, embeddings, clustering, output."""

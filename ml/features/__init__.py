"""Feature functions shared by training, streaming and replay: pure pandas, frame in, frame out."""

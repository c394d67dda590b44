"""The pykka actors that host the pure cores inside one broker process."""

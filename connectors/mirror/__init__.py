"""Cross-cluster mirroring in the style of MirrorMaker 2 (issue #17).

``policy`` holds the pure decisions (remote topic names, filters, the loop rule, offset
translation, MM2 properties parsing); ``runner`` is the shell that moves records between two
clusters with the rillet clients.
"""

"""Image-classification weight-sharing search (the seed of SemiNAS's ImageNet/MBConv task).

Today: a small MBConv supernet on real Fashion-MNIST images (``fashion_mnist``, ``supernet``) and its
``SupernetBackend`` for the generic supernet actors (``supernet_backend``).
"""

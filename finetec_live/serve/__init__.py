"""One inference server for many streams (``finetec-serve``): window messages in, labels out."""

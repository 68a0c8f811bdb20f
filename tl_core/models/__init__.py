"""The networks: backbones and their stages, the classifier, the frozen-prefix feature cache, and saving and loading a trained model."""

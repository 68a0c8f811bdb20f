"""Numbers computed from predictions and features: accuracy and its intervals, the label-free validators, transferability scores, the shared PCA. Pure functions of arrays."""

"""Advice before training: short probes read by the label-free validators, and the advisor that ranks backbones, freeze depths and methods for a pair."""

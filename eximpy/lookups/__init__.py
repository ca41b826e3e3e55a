"""eximpy.lookups"""

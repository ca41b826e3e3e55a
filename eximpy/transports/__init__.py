"""eximpy.transports"""

"""eximpy.cli"""

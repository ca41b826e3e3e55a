"""eximpy.config"""

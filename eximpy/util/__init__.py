"""eximpy.util"""

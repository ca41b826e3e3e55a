"""eximpy.expand"""

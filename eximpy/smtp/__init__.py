"""eximpy.smtp"""

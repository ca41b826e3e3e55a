"""eximpy.hintsdb"""

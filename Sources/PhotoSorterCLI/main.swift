import PhotoSorterServer
import ArgumentParser
print("x")

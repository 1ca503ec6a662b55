import platform

print(platform.machine())

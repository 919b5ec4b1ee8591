layer name=a tokens=65536 out=32768 in=1

layer name=a tokens=1 out=4

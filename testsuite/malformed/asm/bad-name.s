layer name=a=b tokens=1 out=4 in=4

layer name=a tokens=-1 out=4 in=4

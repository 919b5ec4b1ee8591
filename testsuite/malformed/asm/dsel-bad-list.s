dsel row=0 bus=a,b s1=0,0 s2=0,1

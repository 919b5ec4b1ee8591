cfg n=2 m=4 agg=0

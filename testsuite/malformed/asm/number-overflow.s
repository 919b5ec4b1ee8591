cfg n=300 m=4 agg=1

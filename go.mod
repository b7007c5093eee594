module wsauth

go 1.26.0

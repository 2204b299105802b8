import GenTensor
print("generative")

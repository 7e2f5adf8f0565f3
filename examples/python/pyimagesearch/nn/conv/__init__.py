# import the necessary packages
from .minivggnet import MiniVGGNet

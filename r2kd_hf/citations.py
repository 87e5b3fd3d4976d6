"""BibTeX of the methods r2kd_hf implements; registrations and model cards refer to these."""

R2KD = """@article{kim2024r2kd,
  title={Robustness-Reinforced Knowledge Distillation with Correlation Distance and Network Pruning},
  author={Kim, Seonghak and Ham, Gyeongdo and Cho, Yucheol and Kim, Daeshik},
  journal={IEEE Transactions on Knowledge and Data Engineering}, volume={36}, number={12}, pages={9163--9175},
  year={2024}, doi={10.1109/TKDE.2024.3438074}
}"""

DIST = """@inproceedings{huang2022dist,
  title={Knowledge Distillation from A Stronger Teacher},
  author={Huang, Tao and You, Shan and Wang, Fei and Qian, Chen and Xu, Chang},
  booktitle={NeurIPS}, year={2022}
}"""

KD = """@article{hinton2015distilling,
  title={Distilling the Knowledge in a Neural Network},
  author={Hinton, Geoffrey and Vinyals, Oriol and Dean, Jeff}, journal={arXiv:1503.02531}, year={2015}
}"""

DKD = """@inproceedings{zhao2022dkd,
  title={Decoupled Knowledge Distillation},
  author={Zhao, Borui and Cui, Quan and Song, Renjie and Qiu, Yiyu and Liang, Jiajun}, booktitle={CVPR}, year={2022}
}"""

CMKD = """@article{niu2024cmkd,
  title={Efficient and Robust Knowledge Distillation from A Stronger Teacher Based on Correlation Matching},
  author={Niu, Wenqi and Wang, Yingchao and Cai, Guohui and Hou, Hanpo}, journal={arXiv:2410.06561}, year={2024}
}"""

TORCH_PRUNING = """@inproceedings{fang2023depgraph,
  title={DepGraph: Towards Any Structural Pruning},
  author={Fang, Gongfan and Ma, Xinyin and Song, Mingli and Mi, Michael Bi and Wang, Xinchao}, booktitle={CVPR}, year={2023}
}"""

CUTMIX = """@inproceedings{yun2019cutmix,
  title={CutMix: Regularization Strategy to Train Strong Classifiers with Localizable Features},
  author={Yun, Sangdoo and Han, Dongyoon and Oh, Seong Joon and Chun, Sanghyuk and Choe, Junsuk and Yoo, Youngjoon}, booktitle={ICCV}, year={2019}
}"""

MIXUP = """@inproceedings{zhang2018mixup,
  title={mixup: Beyond Empirical Risk Minimization},
  author={Zhang, Hongyi and Cisse, Moustapha and Dauphin, Yann N. and Lopez-Paz, David}, booktitle={ICLR}, year={2018}
}"""

CUTOUT = """@article{devries2017cutout,
  title={Improved Regularization of Convolutional Neural Networks with Cutout},
  author={DeVries, Terrance and Taylor, Graham W.}, journal={arXiv:1708.04552}, year={2017}
}"""

AUTOAUGMENT = """@inproceedings{cubuk2019autoaugment,
  title={AutoAugment: Learning Augmentation Strategies from Data},
  author={Cubuk, Ekin D. and Zoph, Barret and Mane, Dandelion and Vasudevan, Vijay and Le, Quoc V.}, booktitle={CVPR}, year={2019}
}"""

RANDAUGMENT = """@inproceedings{cubuk2020randaugment,
  title={RandAugment: Practical Automated Data Augmentation with a Reduced Search Space},
  author={Cubuk, Ekin D. and Zoph, Barret and Shlens, Jonathon and Le, Quoc V.}, booktitle={CVPR Workshops}, year={2020}
}"""

GOOD_DA_KD = """@inproceedings{wang2022gooddakd,
  title={What Makes a ``Good'' Data Augmentation in Knowledge Distillation -- A Statistical Perspective},
  author={Wang, Huan and Lohit, Suhas and Jones, Michael and Fu, Yun}, booktitle={NeurIPS}, year={2022}
}"""

COMMON_CORRUPTIONS = """@inproceedings{hendrycks2019robustness,
  title={Benchmarking Neural Network Robustness to Common Corruptions and Perturbations},
  author={Hendrycks, Dan and Dietterich, Thomas}, booktitle={ICLR}, year={2019}
}"""

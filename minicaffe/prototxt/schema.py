"""The caffe.proto messages minicaffe models, as data.

Each message is a few lines of a small table language (parsed once at import by `parse_schema`):

    message FillerParameter            a message; its fields follow, indented
      type string = "constant"         name, kind, optional default (proto2 defaults otherwise)
      *mean_value float                a leading `*` marks a repeated field
      pool PoolMethod = MAX            a kind that names an enum or a message
    enum PoolMethod MAX AVE STOCHASTIC  an enum: value names, numbered 0, 1, ... unless `NAME=n`
    known LayerParameter crop_param    Caffe fields minicaffe does not model (warn, keep raw text)

Field names, kinds, defaults and enum numbers follow BVLC caffe.proto (1.0) and the SSL fork
(wenwei202/caffe); the minicaffe extensions are listed in docs/ARCHITECTURE.md. The protobuf
schema of the same messages is minicaffe/proto/caffe.proto (field numbers live there; minicaffe's
own enum values are numbered 5001 and up, as there); tests/pycaffe/test_caffe_pb2.py keeps the
two in step. The `known`
SolverParameter fields are the SSL fork's later force-regularization experiments. Enum names are
global here; where two caffe.proto enums share a name but differ (Engine is the same
everywhere) they get distinct names below.
"""
from dataclasses import dataclass, field

SCALAR_KINDS = ("double", "float", "int32", "int64", "uint32", "uint64", "bool", "string",
                "bytes")

_TABLE = r"""
enum Phase TRAIN TEST
enum Engine DEFAULT CAFFE CUDNN
enum DimCheckMode STRICT PERMISSIVE
enum VarianceNorm FAN_IN FAN_OUT AVERAGE
enum NormalizationMode FULL VALID BATCH_SIZE NONE
enum DB LEVELDB LMDB IDX=5001 CIFAR10
enum EltwiseOp PROD SUM MAX
enum NormRegion ACROSS_CHANNELS WITHIN_CHANNEL
enum PoolMethod MAX AVE STOCHASTIC
enum RoundMode CEIL FLOOR
enum ConvMode LOWERED_GEMM LOWERED_CSRMM LOWERED_CCNMM
enum ConnectivityMode CONNECTED DISCONNECTED_ELTWISE DISCONNECTED_GRPWISE
enum SnapshotFormat HDF5 BINARYPROTO
enum SolverMode CPU GPU
enum SolverType SGD NESTEROV ADAGRAD RMSPROP ADADELTA ADAM
enum GroupLassoUpdate SUBGRADIENT PROXIMAL
enum BudgetScope CONV ALL
enum ReductionOp SUM=1 ASUM SUMSQ MEAN
enum HingeNorm L1=1 L2
enum V1LayerType NONE=0 ABSVAL=35 ACCURACY=1 ARGMAX=30 BNLL=2 CONCAT=3 CONTRASTIVE_LOSS=37 CONVOLUTION=4 DATA=5 DECONVOLUTION=39 DROPOUT=6 DUMMY_DATA=32 EUCLIDEAN_LOSS=7 ELTWISE=25 EXP=38 FLATTEN=8 HDF5_DATA=9 HDF5_OUTPUT=10 HINGE_LOSS=28 IM2COL=11 IMAGE_DATA=12 INFOGAIN_LOSS=13 INNER_PRODUCT=14 LRN=15 MEMORY_DATA=29 MULTINOMIAL_LOGISTIC_LOSS=16 MVN=34 POOLING=17 POWER=26 RELU=18 SIGMOID=19 SIGMOID_CROSS_ENTROPY_LOSS=27 SILENCE=36 SOFTMAX=20 SOFTMAX_LOSS=21 SPLIT=22 SLICE=33 TANH=23 WINDOW_DATA=24 THRESHOLD=31

message BlobShape
  *dim int64
message BlobProto
  shape BlobShape
  *data float
  *diff float
  *double_data double
  *double_diff double
  num int32 = 0
  channels int32 = 0
  height int32 = 0
  width int32 = 0
message BlobProtoVector
  *blobs BlobProto
message Datum
  channels int32
  height int32
  width int32
  data bytes
  label int32
  *float_data float
  encoded bool = false
message FillerParameter
  type string = "constant"
  value float = 0
  min float = 0
  max float = 1
  mean float = 0
  std float = 1
  sparse int32 = -1
  variance_norm VarianceNorm = FAN_IN

message NetParameter
  name string
  *input string
  *input_shape BlobShape
  *input_dim int32
  force_backward bool = false
  state NetState
  debug_info bool = false
  *layer LayerParameter
  *layers V1LayerParameter

message SolverParameter
  net string
  net_param NetParameter
  train_net string
  *test_net string
  train_net_param NetParameter
  *test_net_param NetParameter
  train_state NetState
  *test_state NetState
  *test_iter int32
  test_interval int32 = 0
  test_compute_loss bool = false
  test_initialization bool = true
  base_lr float
  display int32
  average_loss int32 = 1
  max_iter int32
  iter_size int32 = 1
  lr_policy string
  gamma float
  power float
  momentum float
  weight_decay float
  regularization_type string = "L2"
  stepsize int32
  *stepvalue int32
  clip_gradients float = -1
  snapshot int32 = 0
  snapshot_prefix string
  snapshot_diff bool = false
  snapshot_format SnapshotFormat = BINARYPROTO
  solver_mode SolverMode = GPU
  device_id int32 = 0
  random_seed int64 = -1
  type string = "SGD"
  delta float = 1e-8
  momentum2 float = 0.999
  rms_decay float = 0.99
  debug_info bool = false
  snapshot_after_train bool = true
  solver_type SolverType = SGD
  layer_wise_reduce bool = true
  *weights string
  breadth_decay float = 0
  kernel_shape_decay float = 0
  block_group_decay float = 0
  group_lasso_update GroupLassoUpdate = SUBGRADIENT
  zero_threshold float = 0
  sparsity_report bool = true
  flops_target float = 0
  flops_target_scope BudgetScope = CONV
  latency_target float = 0
  budget_schedule BudgetSchedule
  bn_recalibration_batches int32 = 0
known SolverParameter force_decay force_type force_iter
message BudgetSchedule
  reach_iter int32 = 0
  finetune_iter int32 = 0
  interval int32 = 10
  gain float = 2
  max_step float = 1.2
  initial_decay float = 0
  tolerance float = 0.01
  max_lag float = 0.1
message SolverState
  iter int32
  learned_net string
  *history BlobProto
  current_step int32 = 0

message NetState
  phase Phase = TEST
  level int32 = 0
  *stage string
message NetStateRule
  phase Phase
  min_level int32
  max_level int32
  *stage string
  *not_stage string
message ParamSpec
  name string
  share_mode DimCheckMode
  lr_mult float = 1
  decay_mult float = 1
  breadth_decay_mult float = 0
  kernel_shape_decay_mult float = 0
  *block_group_lasso BlockGroupLassoSpec
  regularization_type string = ""
  decay_proto string = ""
message BlockGroupLassoSpec
  xdimen uint32 = 1
  ydimen uint32 = 1
  block_decay_mult float = 1

message LayerParameter
  name string
  type string
  *bottom string
  *top string
  phase Phase
  *loss_weight float
  *param ParamSpec
  *blobs BlobProto
  *propagate_down bool
  connectivity_mode ConnectivityMode = CONNECTED
  *include NetStateRule
  *exclude NetStateRule
  transform_param TransformationParameter
  loss_param LossParameter
  accuracy_param AccuracyParameter
  argmax_param ArgMaxParameter
  batch_norm_param BatchNormParameter
  bias_param BiasParameter
  concat_param ConcatParameter
  convolution_param ConvolutionParameter
  data_param DataParameter
  dropout_param DropoutParameter
  dummy_data_param DummyDataParameter
  eltwise_param EltwiseParameter
  elu_param ELUParameter
  exp_param ExpParameter
  flatten_param FlattenParameter
  hdf5_data_param HDF5DataParameter
  image_data_param ImageDataParameter
  inner_product_param InnerProductParameter
  input_param InputParameter
  log_param LogParameter
  lrn_param LRNParameter
  memory_data_param MemoryDataParameter
  pooling_param PoolingParameter
  power_param PowerParameter
  prelu_param PReLUParameter
  python_param PythonParameter
  relu_param ReLUParameter
  reshape_param ReshapeParameter
  scale_param ScaleParameter
  sigmoid_param SigmoidParameter
  softmax_param SoftmaxParameter
  slice_param SliceParameter
  tanh_param TanHParameter
  threshold_param ThresholdParameter
  crop_param CropParameter
  recurrent_param RecurrentParameter
  clip_param ClipParameter
  swish_param SwishParameter
  embed_param EmbedParameter
  parameter_param ParameterParameter
  reduction_param ReductionParameter
  tile_param TileParameter
  contrastive_loss_param ContrastiveLossParameter
  hinge_loss_param HingeLossParameter
  infogain_loss_param InfogainLossParameter
  hdf5_output_param HDF5OutputParameter
  mvn_param MVNParameter
  spp_param SPPParameter
known LayerParameter window_data_param

message TransformationParameter
  scale float = 1
  mirror bool = false
  crop_size uint32 = 0
  mean_file string
  *mean_value float
  force_color bool = false
  force_gray bool = false
message LossParameter
  ignore_label int32
  normalization NormalizationMode = VALID
  normalize bool
message AccuracyParameter
  top_k uint32 = 1
  axis int32 = 1
  ignore_label int32
message ArgMaxParameter
  out_max_val bool = false
  top_k uint32 = 1
  axis int32
message BatchNormParameter
  use_global_stats bool
  moving_average_fraction float = 0.999
  eps float = 1e-5
message BiasParameter
  axis int32 = 1
  num_axes int32 = 1
  filler FillerParameter
message ConcatParameter
  axis int32 = 1
  concat_dim uint32 = 1
message ConvolutionParameter
  num_output uint32
  bias_term bool = true
  *pad uint32
  *kernel_size uint32
  *stride uint32
  *dilation uint32
  pad_h uint32 = 0
  pad_w uint32 = 0
  kernel_h uint32
  kernel_w uint32
  stride_h uint32
  stride_w uint32
  group uint32 = 1
  weight_filler FillerParameter
  bias_filler FillerParameter
  engine Engine = DEFAULT
  axis int32 = 1
  force_nd_im2col bool = false
  conv_mode ConvMode = LOWERED_GEMM
message DataParameter
  source string
  batch_size uint32
  rand_skip uint32 = 0
  backend DB = LEVELDB
  scale float = 1
  mean_file string
  crop_size uint32 = 0
  mirror bool = false
  force_encoded_color bool = false
  prefetch uint32 = 4
message DropoutParameter
  dropout_ratio float = 0.5
message DummyDataParameter
  *data_filler FillerParameter
  *shape BlobShape
  *num uint32
  *channels uint32
  *height uint32
  *width uint32
message EltwiseParameter
  operation EltwiseOp = SUM
  *coeff float
  stable_prod_grad bool = true
message ELUParameter
  alpha float = 1
message ExpParameter
  base float = -1
  scale float = 1
  shift float = 0
message FlattenParameter
  axis int32 = 1
  end_axis int32 = -1
message HDF5DataParameter
  source string
  batch_size uint32
  shuffle bool = false
message ImageDataParameter
  source string
  batch_size uint32 = 1
  rand_skip uint32 = 0
  shuffle bool = false
  new_height uint32 = 0
  new_width uint32 = 0
  is_color bool = true
  scale float = 1
  mean_file string
  crop_size uint32 = 0
  mirror bool = false
  root_folder string = ""
message InnerProductParameter
  num_output uint32
  bias_term bool = true
  weight_filler FillerParameter
  bias_filler FillerParameter
  axis int32 = 1
  transpose bool = false
message InputParameter
  *shape BlobShape
message LogParameter
  base float = -1
  scale float = 1
  shift float = 0
message LRNParameter
  local_size uint32 = 5
  alpha float = 1
  beta float = 0.75
  norm_region NormRegion = ACROSS_CHANNELS
  k float = 1
  engine Engine = DEFAULT
message MemoryDataParameter
  batch_size uint32
  channels uint32
  height uint32
  width uint32
message PoolingParameter
  pool PoolMethod = MAX
  pad uint32 = 0
  pad_h uint32 = 0
  pad_w uint32 = 0
  kernel_size uint32
  kernel_h uint32
  kernel_w uint32
  stride uint32 = 1
  stride_h uint32
  stride_w uint32
  engine Engine = DEFAULT
  global_pooling bool = false
  round_mode RoundMode = CEIL
message PowerParameter
  power float = 1
  scale float = 1
  shift float = 0
message PReLUParameter
  filler FillerParameter
  channel_shared bool = false
message PythonParameter
  module string
  layer string
  param_str string = ""
  share_in_parallel bool = false
message ReLUParameter
  negative_slope float = 0
  engine Engine = DEFAULT
message ReshapeParameter
  shape BlobShape
  axis int32 = 0
  num_axes int32 = -1
message ScaleParameter
  axis int32 = 1
  num_axes int32 = 1
  filler FillerParameter
  bias_term bool = false
  bias_filler FillerParameter
message SigmoidParameter
  engine Engine = DEFAULT
message SoftmaxParameter
  engine Engine = DEFAULT
  axis int32 = 1
message SliceParameter
  axis int32 = 1
  *slice_point uint32
  slice_dim uint32 = 1
message TanHParameter
  engine Engine = DEFAULT
message ThresholdParameter
  threshold float = 0
message CropParameter
  axis int32 = 2
  *offset uint32
message RecurrentParameter
  num_output uint32 = 0
  weight_filler FillerParameter
  bias_filler FillerParameter
  debug_info bool = false
  expose_hidden bool = false
message ClipParameter
  min float
  max float
message SwishParameter
  beta float = 1
message EmbedParameter
  num_output uint32
  input_dim uint32
  bias_term bool = true
  weight_filler FillerParameter
  bias_filler FillerParameter
message ParameterParameter
  shape BlobShape
message ReductionParameter
  operation ReductionOp = SUM
  axis int32 = 0
  coeff float = 1
message TileParameter
  axis int32 = 1
  tiles int32
message ContrastiveLossParameter
  margin float = 1
  legacy_version bool = false
message HingeLossParameter
  norm HingeNorm = L1
message InfogainLossParameter
  source string
  axis int32 = 1
message HDF5OutputParameter
  file_name string
message MVNParameter
  normalize_variance bool = true
  across_channels bool = false
  eps float = 1e-9
message SPPParameter
  pyramid_height uint32
  pool PoolMethod = MAX
  engine Engine = DEFAULT

message V1LayerParameter
  name string
  type V1LayerType
  *bottom string
  *top string
  *include NetStateRule
  *exclude NetStateRule
  *blobs BlobProto
  *param string
  *blob_share_mode DimCheckMode
  *blobs_lr float
  *weight_decay float
  *loss_weight float
  accuracy_param AccuracyParameter
  argmax_param ArgMaxParameter
  concat_param ConcatParameter
  convolution_param ConvolutionParameter
  data_param DataParameter
  dropout_param DropoutParameter
  dummy_data_param DummyDataParameter
  eltwise_param EltwiseParameter
  exp_param ExpParameter
  hdf5_data_param HDF5DataParameter
  image_data_param ImageDataParameter
  inner_product_param InnerProductParameter
  lrn_param LRNParameter
  memory_data_param MemoryDataParameter
  pooling_param PoolingParameter
  power_param PowerParameter
  relu_param ReLUParameter
  sigmoid_param SigmoidParameter
  softmax_param SoftmaxParameter
  slice_param SliceParameter
  tanh_param TanHParameter
  threshold_param ThresholdParameter
  transform_param TransformationParameter
  loss_param LossParameter
  layer V0LayerParameter
  contrastive_loss_param ContrastiveLossParameter
  hinge_loss_param HingeLossParameter
  infogain_loss_param InfogainLossParameter
  hdf5_output_param HDF5OutputParameter
  mvn_param MVNParameter
known V1LayerParameter window_data_param

message V0LayerParameter
  name string
  type string
  num_output uint32
  biasterm bool = true
  weight_filler FillerParameter
  bias_filler FillerParameter
  pad uint32 = 0
  kernelsize uint32
  group uint32 = 1
  stride uint32 = 1
  pool PoolMethod = MAX
  dropout_ratio float = 0.5
  local_size uint32 = 5
  alpha float = 1
  beta float = 0.75
  k float = 1
  source string
  scale float = 1
  meanfile string
  batchsize uint32
  cropsize uint32 = 0
  mirror bool = false
  *blobs BlobProto
  *blobs_lr float
  *weight_decay float
  rand_skip uint32 = 0
  det_fg_threshold float = 0.5
  det_bg_threshold float = 0.5
  det_fg_fraction float = 0.25
  det_context_pad uint32 = 0
  det_crop_mode string = "warp"
  new_num int32 = 0
  new_channels int32 = 0
  new_height int32 = 0
  new_width int32 = 0
  shuffle_images bool = false
  concat_dim uint32 = 1
  hdf5_output_param HDF5OutputParameter
"""


@dataclass
class EnumType:
    """A caffe.proto enum: value names in declaration order and their numbers."""
    name: str
    values: dict  # name -> number

    def name_of(self, number):
        """The value name for a number, or None."""
        for key, num in self.values.items():
            if num == number:
                return key
        return None


@dataclass
class FieldSpec:
    """One field of a message: `kind` is a scalar kind, an enum name or a message name."""
    name: str
    kind: str
    repeated: bool = False
    default: object = None
    enum: EnumType = None

    @property
    def is_message(self):
        return self.kind not in SCALAR_KINDS and self.enum is None


@dataclass
class MessageSpec:
    name: str
    fields: dict = field(default_factory=dict)  # name -> FieldSpec, in declaration order
    known: tuple = ()  # Caffe field names minicaffe keeps as raw text


_PROTO2_DEFAULTS = {"double": 0.0, "float": 0.0, "bool": False, "string": "", "bytes": b""}


def _parse_default(text, kind, enum):
    if enum is not None:
        if text not in enum.values:
            raise AssertionError(f"schema: default {text} not in enum {enum.name}")
        return text
    if kind in ("double", "float"):
        return float(text)
    if kind == "bool":
        return {"true": True, "false": False}[text]
    if kind == "string":
        return text.strip('"')
    return int(text)


def parse_schema(table):
    """(enums, messages) from the table language in this module's docstring."""
    enums, messages, pending = {}, {}, []
    current = None
    for raw in table.splitlines():
        line = raw.strip()
        if not line:
            continue
        words = line.split()
        if words[0] == "enum":
            values, number = {}, 0
            for item in words[2:]:
                name, _, num = item.partition("=")
                number = int(num) if num else number
                values[name] = number
                number += 1
            enums[words[1]] = EnumType(words[1], values)
        elif words[0] == "message":
            current = messages[words[1]] = MessageSpec(words[1])
        elif words[0] == "known":
            messages[words[1]].known = tuple(words[2:])
        else:
            name, kind = words[0], words[1]
            repeated = name.startswith("*")
            name = name.lstrip("*")
            spec = FieldSpec(name, kind, repeated)
            current.fields[name] = spec
            pending.append((spec, words[3] if len(words) > 3 else None))
    for spec, default in pending:
        spec.enum = enums.get(spec.kind)
        if spec.enum is None and spec.kind not in SCALAR_KINDS and spec.kind not in messages:
            raise AssertionError(f"schema: unknown kind {spec.kind} of field {spec.name}")
        if spec.repeated or spec.is_message:
            continue
        if default is not None:
            spec.default = _parse_default(default, spec.kind, spec.enum)
        elif spec.enum is not None:
            spec.default = next(iter(spec.enum.values))
        else:
            spec.default = _PROTO2_DEFAULTS.get(spec.kind, 0)
    return enums, messages


ENUMS, MESSAGES = parse_schema(_TABLE)
